import { ApiProperty } from '@nestjs/swagger';
import { ROLES, type Role } from '../user.entity';

export class UserDto {
  /** @example 1 */
  id: number;
  /** @example admin */
  username: string;
  @ApiProperty({ enum: ROLES, example: 'admin' })
  role: Role;
  /** Unix seconds @example 1764000000 */
  created_at?: number;
}

export class MeUserDto {
  /** null when authenticated by the API key @example 1 */
  id: number | null;
  /** @example admin */
  username: string;
  @ApiProperty({ enum: ROLES, example: 'admin' })
  role: Role;
}

export class UserResponseDto {
  user: UserDto;
}

export class MeResponseDto {
  user: MeUserDto;
}

export class UsersResponseDto {
  users: UserDto[];
}

export class SuccessResponseDto {
  /** @example true */
  success: boolean;
}
